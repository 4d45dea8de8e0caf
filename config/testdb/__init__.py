"""The PostgreSQL backend of the test suite: Django's, emptying tables past the audit triggers."""
