"""Small pure helpers shared by the stack modules (no AWS calls, no file I/O)."""
