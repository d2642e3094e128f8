"""Services: what runs beside the requests (webhook delivery, retention, the
live feed) and what the handlers share across requests (the learned-policy
cache). They see storage only through its protocols. Importing this package
loads nothing: import the module you need."""
