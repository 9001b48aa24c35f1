export * from './config.js';
export {
  checkConfigForModel,
  configuredLimits,
  crossKeyProblems,
  limitsRequest,
  type RuleProblem,
} from './rules.js';
