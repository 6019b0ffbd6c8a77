"""Who may open which model with which program (issue 17): policy as data, decisions, time-boxed grants.

policy.py reads the policy files (every problem with file and line); decide.py is the pure, cached decision
the fanotify permission path calls; grants.py keeps time-boxed grants and users' requests.
"""
