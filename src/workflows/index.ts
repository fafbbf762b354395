// The worker's workflowsPath: every workflow type the worker runs.
export { grantWorkflow } from './grant';
export { organizationWorkflow } from './organization';
export { leftoverRemovedWorkflow, reconcileWorkflow } from './reconcile';
export { sessionsWorkflow } from './sessions';
