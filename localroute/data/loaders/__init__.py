"""One module per family of public sources; `localroute.data.sources` lists them as SOURCES."""
