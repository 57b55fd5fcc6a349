"""SQL of the rules service, one module per aggregate. Functions run inside the caller's
transaction; none commits."""
