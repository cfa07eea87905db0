settings = { banner = string.format("%s-%d", ("gate"):upper(), 7), t = { 1, 2, { x = 3 } } }
listen = { { address = "127.0.0.1", port = 2525 } }
user = "nobody"
allow_user_nobody = true
