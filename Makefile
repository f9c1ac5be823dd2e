# flashsale Makefile.
# Each group of targets declares its own .PHONY line; add new groups below.

SHELL := /bin/bash

STACK := scripts/stack.sh

# ---- local dependency stack (PostgreSQL, 3x Redis, Kafka; see scripts/stack.sh) ----
# Env for the service/tests: eval "$$(scripts/stack.sh env)"
.PHONY: stack-up stack-down stack-status

stack-up:
	$(STACK) up >/dev/null

stack-down:
	$(STACK) down

stack-status:
	$(STACK) status
