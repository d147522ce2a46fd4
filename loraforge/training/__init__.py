"""Training LoRAs on Replicate from a dataset's export, tracked until the weights are in the store.

- `options`: what a user may ask (`TrainOptions`), shared by the CLI, the API and the flow;
- `schema`: the trainer's inputs checked against its version's OpenAPI schema;
- `provider`: the official `replicate` client, its 429 handling, its errors translated;
- `records`: the catalog side (the `trainings` rows);
- `service`: the use-cases (plan, upload, start, record, sync, cancel, wait, webhooks);
- `webhooks`: Replicate's signed webhook calls.

The API token is the replicate client's own `REPLICATE_API_TOKEN`; nothing here stores or prints it.
"""
