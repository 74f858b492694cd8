"""Tables, the async engine and the queries."""
