"""Egalitarian Paxos (Moraru, Andersen, Kaminsky, SOSP 2013; CMU-PDL-13-111), with the
recovery fixed as Sutra (2019) and Ryabinin, Gotsman and Sutra (EPaxos*, OPODIS 2025)
require: see core.py and docs/epaxos.md."""
