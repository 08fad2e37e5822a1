"""``manage.py bench executions|policies|pages|live``: each figure beside its floor, measured in
the same run in a throwaway environment. Outside the shipped apps: nothing at run time imports
it; it is installed only for its command and its floor task."""
