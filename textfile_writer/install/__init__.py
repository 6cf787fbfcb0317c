"""`agent-exporter install` and `uninstall`: the systemd units, their users and directories."""
