export * from './config.js';
export {
  checkConfigForModel,
  controlRate,
  configuredControlRate,
  configuredLimits,
  crossKeyProblems,
  limitsRequest,
  type RuleProblem,
} from './rules.js';
