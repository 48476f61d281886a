"""The simulated clinic (`python -m tools.demo`): a broker, the logger, the board and N room
daemons on this machine, driven by a script, with a summary of what was delivered."""
