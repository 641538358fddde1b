"""Running processes on other hosts over SSH: connections, remote paths, jobs and workspaces."""
