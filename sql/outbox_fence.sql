SELECT fence FROM __shard__.relay_lease
