export * from './config.js';
export {
  checkConfigForModel,
  configuredControlRate,
  configuredLimits,
  crossKeyProblems,
  limitsRequest,
  type RuleProblem,
} from './rules.js';
