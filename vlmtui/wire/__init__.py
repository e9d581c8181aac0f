"""What the vlmtui process and the worker both speak: protocol messages and the model spec."""
