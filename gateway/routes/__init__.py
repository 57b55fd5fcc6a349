"""HTTP routes, one module per audience: the user (me), operator backends (events), admins."""
