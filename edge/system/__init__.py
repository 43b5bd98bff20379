"""The system: settings and their history, maintenance, network, doctor, certificate, accounts, clock."""
