"""Models, schema migrations, the transition writer and the queries."""
