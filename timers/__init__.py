"""The systemd unit templates (`*.in`) that `agent-exporter install` renders for user or system scope.

Installed as the package `textfile_writer.timers` (see setup.cfg), so an installed agent-exporter
finds them next to its code.
"""
