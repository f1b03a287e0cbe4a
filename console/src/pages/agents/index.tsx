/** The agents area: agents and their tasks, the team's task executions, webhooks, dead letters. */
import type { ReactNode } from "react";
import { Route, Routes } from "react-router-dom";
import { PageHeader } from "../../components/common";
import { AgentList } from "./AgentList";
import { AgentPage } from "./AgentPage";
import { DeadLetters } from "./DeadLetters";
import { ExecutionList } from "./Executions";
import { Hooks } from "./Hooks";
import { RouteTabs } from "./ui";

const TABS = [
  { value: "", label: "Agents" },
  { value: "executions", label: "Task executions" },
  { value: "hooks", label: "Webhooks" },
  { value: "dead-letters", label: "Dead letters" },
];

function Home(props: { children: ReactNode }) {
  return (
    <>
      <PageHeader title="Agents & tasks" description="Agents run tasks on schedules, on events and on demand." />
      <RouteTabs base="/agents" tabs={TABS} />
      {props.children}
    </>
  );
}

export default function Area() {
  return (
    <Routes>
      <Route index element={<Home><AgentList /></Home>} />
      <Route path="executions" element={<Home><ExecutionList /></Home>} />
      <Route path="hooks" element={<Home><Hooks /></Home>} />
      <Route path="dead-letters" element={<Home><DeadLetters /></Home>} />
      <Route path=":agentId" element={<AgentPage />} />
    </Routes>
  );
}
