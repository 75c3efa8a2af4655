"""Command-line interface (``molchannel COMMAND``)."""
