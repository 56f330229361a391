"""The OnePin side: settings, the API's errors and models, and the HTTP client.

Nothing in this package imports `mcp`: it is a plain async client for the OnePin REST API that
the MCP layers above build on, and that a test enforces as a package boundary.
"""
