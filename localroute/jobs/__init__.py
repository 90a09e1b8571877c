"""Jobs on a Ray cluster: what is sent (package), talking to the job server (server), and what
runs there (run). `localroute.submit` joins them into `localroute submit`."""
