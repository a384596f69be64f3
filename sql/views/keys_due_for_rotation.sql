-- keys_due_for_rotation: active keys whose last rotation (or creation) is older than
-- rotation_days.
SELECT api_key_id, provider, team, application, environment, created_at, last_rotated_at,
  rotation_days,
  CAST(COALESCE(last_rotated_at, created_at) AS DATE) + rotation_days AS due_on,
  CAST(now() AS DATE) - (CAST(COALESCE(last_rotated_at, created_at) AS DATE) + rotation_days) AS days_overdue
FROM api_keys
WHERE status = 'active'
  AND rotation_days IS NOT NULL
  AND COALESCE(last_rotated_at, created_at) IS NOT NULL
  AND CAST(COALESCE(last_rotated_at, created_at) AS DATE) + rotation_days <= CAST(now() AS DATE)
