-- Locks the allotments a batch of orders takes units from, as the first
-- statement of the batch's transaction, in sale order (so batches of
-- several sales can't deadlock). The statements that follow take their
-- snapshots after the locks are held: they read the allotments as they
-- are, and nobody changes them until the batch commits.
-- $1 sale ids  $2 slot
SELECT sale_id FROM stock.allotments
WHERE sale_id = ANY ($1::bigint[]) AND slot = $2
ORDER BY sale_id
FOR UPDATE
