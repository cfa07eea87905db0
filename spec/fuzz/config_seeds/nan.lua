limits = { max_connections = 0/0 }
timeouts = { command = 1/0 }
