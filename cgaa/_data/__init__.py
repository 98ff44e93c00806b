"""Shipped data (forcefields/ and systems/ of the repository), see cgaa.core.resources."""
