"""Health: component reports, alarms, the status strip, metrics and the dashboard's history."""
