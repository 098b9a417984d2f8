import { documentJobs } from '../../modules/documents/jobs.js';
import { purgeExpiredJob } from '../../modules/maintenance/jobs.js';
import { searchJobs } from '../../modules/search/jobs.js';
import type { JobDefinition } from './define.js';

/** Every job the worker runs. Domains add theirs here. */
export const jobDefinitions: JobDefinition[] = [purgeExpiredJob, ...documentJobs, ...searchJobs];
