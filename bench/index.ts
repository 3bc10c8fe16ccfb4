import { scaleBench } from './scale.js';
import { syncBench } from './sync.js';
import { brokersBench } from './brokers.js';
import { databasesBench } from './databases.js';
import type { Bench } from './harness.js';
import { httpCallBench } from './http-call.js';
import { mappingBench } from './mapping.js';
import { pipelineBench } from './pipeline.js';
import { webhookDeliverBench } from './webhook-deliver.js';
import { webhookIngestBench } from './webhook-ingest.js';

/** Every benchmark `npm run bench` knows, by name. Add yours here. */
export const benches: Bench[] = [pipelineBench, mappingBench, webhookIngestBench, webhookDeliverBench, httpCallBench, databasesBench, brokersBench, scaleBench, syncBench];
