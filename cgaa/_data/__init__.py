"""Shipped data (forcefields/ and systems/ of the repository), see cgaa.resources."""
