-- Records that the holder of token $2 now guards sale $1; false when a
-- later holder already did.
UPDATE sales SET fence = $2 WHERE id = $1 AND fence < $2
