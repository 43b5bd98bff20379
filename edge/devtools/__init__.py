"""Developer tooling (catalogs, translation marks, the web-font build): not shipped in the box."""
