SELECT nextval('fencing_tokens')
