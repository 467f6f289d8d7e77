"""A small shop that texts its customers: sign-up codes and order confirmations (the code under test)."""
