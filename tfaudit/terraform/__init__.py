"""Running terraform: finding the binary, routing its arguments, and the one module that starts processes."""
