"""Ray jobs: each module is one stage a user runs through `localroute` or `localroute submit`."""
