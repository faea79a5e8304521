"""A recorded terraform run, from the invocation to the published records: apply, plan, destroy, the state commands and drift."""
