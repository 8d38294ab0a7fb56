"""Side-by-side comparisons of fastcore with its peers that the load
harness's single runs cannot settle:

    python -m bench.peers.rounds APP ROUNDS SECONDS [SERVER ...]
        requests/s in alternated rounds (the servers' order rotated each
        round), with each peer's ratio to fastcore per round and on the mean
    python -m bench.peers.instructions SERVER APP
        instructions per request of one server under callgrind (two runs
        of different lengths, as the cost gate counts)
"""
