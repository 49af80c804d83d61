"""Input rules shared by the core, the CLI and the HTTP API: names, memory content, offsets and times."""
