"""Viewstamped Replication Revisited (Liskov and Cowling, MIT-CSAIL-TR-2012-021): see core.py."""
