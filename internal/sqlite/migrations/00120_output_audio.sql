-- The audio in the files a call or job returned (per_output_audio_second),
-- kept apart from the audio it uploaded (audio_millis).

-- +goose Up
ALTER TABLE usage_records ADD COLUMN output_audio_millis INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN output_audio_ms INTEGER NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE jobs DROP COLUMN output_audio_ms;
ALTER TABLE usage_records DROP COLUMN output_audio_millis;
