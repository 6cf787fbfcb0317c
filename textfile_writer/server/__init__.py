"""The HTTP server that re-serves the textfile (`agent-exporter serve`): reads the file only."""
