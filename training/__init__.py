"""GenreLens command line: `python -m training <command>` (see `--help`)."""
