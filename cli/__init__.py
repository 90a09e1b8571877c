"""The `localroute` command line: the top floor, the only code that imports both the jobs
(`pipelines/`) and the server (`serve/`)."""
