"""The HTTP layer: the operation table, its handlers, auth, validation, errors
and the OpenAPI document. Handlers make one storage or service call each and
answer with wire models; no SQL here. Importing this package loads nothing:
import the module you need (``http.operations``, ``http.routes``...)."""
