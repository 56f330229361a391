"""The run viewer: an MCP App page (`page`) and its wiring into the server's surface (`app`)."""
