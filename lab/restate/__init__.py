"""The Restate lab's parts: the relay putting a node's spans on its simulated clock, the
restate-sdk service, and the cluster's processes (see ``lab/restate_cluster.py``)."""
