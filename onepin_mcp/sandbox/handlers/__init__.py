"""The sandbox's API handlers, one module per group of endpoints: account, catalog, workflows,
runs, and the presigned files the API hands out (`files`, below the others, which mint links).

A handler is a plain function of an `ApiCall` that returns a response or raises `ApiError` /
`SchemaError`; the facade (`app`) routes to it and wraps it in authorization and the lock.
"""
