export * from './config.js';
export { checkConfigForModel, crossKeyProblems, type RuleProblem } from './rules.js';
