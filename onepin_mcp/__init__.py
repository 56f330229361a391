"""onepin-mcp: an MCP server that lets AI agents operate OnePin voice-generation workflows."""

__version__ = "0.1.0"
