"""`roomctl status`: every room of a site live in the terminal (`tui.py`, `cli.py`)."""
